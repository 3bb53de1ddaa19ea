"""Each consumer's storage: S3 users and buckets (or prefixes), and the secrets derived for it."""
