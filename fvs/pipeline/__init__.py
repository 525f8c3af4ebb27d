"""decode -> detect -> select -> align -> embed -> score: from photo bytes to a similarity."""
