"""Everything that speaks EDC: request and callback wire shapes, the Management API, expiry."""
