-- 0007: relationship.changed_ms, the wall-clock millisecond of the last change
-- to a relationship row or to its follow-record tags, whoever wrote it
-- (callback ingest, API, sync). The sync compares it with when its WeCom
-- answer was fetched, so an older answer never overwrites newer data
-- (seconds tie too often for that). A writer may set it explicitly;
-- otherwise the triggers stamp it.
ALTER TABLE relationship ADD COLUMN changed_ms INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER relationship_changed_ins AFTER INSERT ON relationship
WHEN NEW.changed_ms = 0
BEGIN
    UPDATE relationship
       SET changed_ms = CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)
     WHERE id = NEW.id;
END;

CREATE TRIGGER relationship_changed_upd AFTER UPDATE ON relationship
WHEN NEW.changed_ms = OLD.changed_ms
BEGIN
    UPDATE relationship
       SET changed_ms = CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)
     WHERE id = NEW.id;
END;

CREATE TRIGGER relationship_tag_changed_ins AFTER INSERT ON relationship_tag
BEGIN
    UPDATE relationship
       SET changed_ms = CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)
     WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.customer_id
       AND employee_id = NEW.employee_id;
END;

CREATE TRIGGER relationship_tag_changed_del AFTER DELETE ON relationship_tag
BEGIN
    UPDATE relationship
       SET changed_ms = CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)
     WHERE tenant_id = OLD.tenant_id AND customer_id = OLD.customer_id
       AND employee_id = OLD.employee_id;
END;
