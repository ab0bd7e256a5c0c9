"""One module per resource; each route parses, calls one library function, returns."""
