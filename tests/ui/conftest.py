def pytest_configure(config):
    config.addinivalue_line("markers", "ui: drives the Airflow UI in Chromium (make test-ui)")
