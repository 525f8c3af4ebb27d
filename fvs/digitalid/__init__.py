"""DOPA-Digital ID beside FVS: confirm a person's attributes against the registry without
disclosing it (issue 14). Card facts live in this module's own tables."""
