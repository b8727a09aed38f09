from django.urls import path

from demo import views

urlpatterns = [
    path("offers/", views.offers, name="demo-offers"),
]
