from django.conf import settings


def test_production_settings_under_test():
    assert settings.DEBUG is False
