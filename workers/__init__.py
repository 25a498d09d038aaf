"""Workers: the projector that turns the log into projections, and background jobs."""
