-- Nothing to undo: ended sessions stay ended.
SELECT 1;
