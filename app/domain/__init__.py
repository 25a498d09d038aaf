"""The pure core: events, commands, account state and errors. No Flask, Redis or RQ."""
