"""Independent references the tests compare the library against."""
