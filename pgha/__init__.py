"""pgha: a highly available PostgreSQL cluster in one command, checked, drilled and explained."""
