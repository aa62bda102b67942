"""`python -m elder_engine COMMAND`: `main` builds the parser and runs a command; each command
is its own module; `common` holds what the commands share and imports none of them;
`checks` validates arguments before any model loads."""
