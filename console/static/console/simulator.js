// The simulator: keep the conversation's newest message in view and the cursor in the text box.
document.addEventListener("DOMContentLoaded", function () {
  var thread = document.getElementById("simulator-thread");
  if (thread) {
    thread.scrollTop = thread.scrollHeight;
  }
  var text = document.getElementById("id_text");
  if (text) {
    text.focus();
  }
});
