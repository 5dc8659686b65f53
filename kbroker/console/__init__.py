"""The web console: static files the control listener serves (control_http.py)."""
