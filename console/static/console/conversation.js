// The conversation page stays current: every few seconds it asks for the entries changed
// since its cursor and puts each one in place (replaced when shown, else added in time order).
(function () {
  "use strict";
  var timeline = document.getElementById("timeline");
  if (!timeline) { return; }
  var url = timeline.dataset.updatesUrl;
  var cursor = timeline.dataset.cursor;
  var every = (parseInt(timeline.dataset.pollSeconds, 10) || 3) * 1000;
  var state = document.getElementById("conversation-state");
  var busy = false;

  function place(entry) {
    var holder = document.createElement("ol");
    holder.innerHTML = entry.html.trim();
    var fresh = holder.firstElementChild;
    var shown = document.getElementById(entry.key);
    if (shown) { shown.replaceWith(fresh); } else { timeline.appendChild(fresh); }
  }

  function poll() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url + "&after=" + encodeURIComponent(cursor), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        data.entries.forEach(place);
        if (state) { state.innerHTML = data.state; }
        cursor = data.cursor;
      })
      .catch(function () { /* offline for a moment: the next poll asks again */ })
      .then(function () { busy = false; });
  }

  setInterval(poll, every);
})();
