-- which of the named relations exist
SELECT name, to_regclass(name) IS NOT NULL FROM unnest(%(names)s::text[]) AS name
