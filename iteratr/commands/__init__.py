"""One module per CLI command: named, typed parameters in, an exit status out."""
