-- Branches: the conversation's branch table (JSON: {"leaf": seq, "runs": [[first, last,
-- parent], ...]}); NULL while the conversation is one line read to its end, as every
-- conversation written before version 2 is.
ALTER TABLE chatvault_conversations ADD COLUMN tree TEXT;
