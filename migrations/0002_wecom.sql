-- 0002: outbound WeCom API identity. The 客户联系 (customer contact) secret
-- lets Siyu call WeCom's server API for this tenant; the API never returns it.
ALTER TABLE callback_config ADD COLUMN secret TEXT;
