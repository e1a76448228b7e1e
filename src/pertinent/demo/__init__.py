"""Generated demo data and the end-to-end demo built on it (`pertinent demo`)."""
