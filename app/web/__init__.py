"""The Flask front end: thin views over ``app.service.Ledger``."""
