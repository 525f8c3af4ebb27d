"""Who may call FVS and how (the announcement's clauses 4-10): agencies, their registered
systems, permits, permitted purposes, consent, conditions."""
