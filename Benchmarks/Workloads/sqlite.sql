-- sqlite workload: inserts, indexes, joins, group by, sorting, updates and deletes on an in-memory database.
-- The driver replaces @ROWS@ (150000 at full scale). Every check prints 'check ok' or 'check FAILED <what>';
-- the driver requires the first and rejects the second.
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INTEGER, bio TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL, note TEXT);

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @ROWS@)
INSERT INTO users SELECT i, 'user' || i, 'u' || (i * 7) || '@example.com', i % 90, hex(randomblob(16 + i % 200)) FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3 * @ROWS@)
INSERT INTO orders SELECT i, 1 + (i * 7919) % @ROWS@, (i % 1000) / 10.0, substr(hex(randomblob(40)), 1, 10 + i % 60) FROM n;

CREATE INDEX orders_user ON orders(user_id);
CREATE INDEX users_age ON users(age);
CREATE INDEX users_bio ON users(bio);

SELECT CASE WHEN count(*) = @ROWS@ AND sum(id) = @ROWS@ * (@ROWS@ + 1) / 2
  THEN 'check ok' ELSE 'check FAILED users' END FROM users;
SELECT CASE WHEN count(*) = 3 * @ROWS@ THEN 'check ok' ELSE 'check FAILED orders' END FROM orders;

-- Every order joins to exactly one user.
SELECT CASE WHEN (SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id) = 3 * @ROWS@
  THEN 'check ok' ELSE 'check FAILED join' END;

-- Grouped sums add up to the total.
SELECT CASE WHEN abs((SELECT sum(s) FROM (SELECT u.age, sum(o.amount) AS s FROM orders o JOIN users u ON u.id = o.user_id
                                          GROUP BY u.age))
                     - (SELECT sum(amount) FROM orders)) <= 1e-6 * (SELECT sum(amount) FROM orders)
  THEN 'check ok' ELSE 'check FAILED group' END;

-- Sorting on text, distinct values, string building.
SELECT CASE WHEN (SELECT count(*) FROM (SELECT name FROM users ORDER BY bio, email)) = @ROWS@
             AND (SELECT count(DISTINCT email) FROM users) = @ROWS@
             AND (SELECT length(group_concat(name, ',')) FROM (SELECT name FROM users WHERE age = 7))
                 = (SELECT sum(length(name)) + count(*) - 1 FROM users WHERE age = 7)
  THEN 'check ok' ELSE 'check FAILED sort' END;

-- Updates that grow rows, deletes, and a re-count against the arithmetic.
UPDATE users SET bio = bio || bio WHERE id % 3 = 0;
DELETE FROM orders WHERE amount < 10;
SELECT CASE WHEN (SELECT count(*) FROM orders) =
  (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3 * @ROWS@)
   SELECT count(*) FROM n WHERE i % 1000 >= 100)
  AND (SELECT count(*) FROM users WHERE length(bio) = 4 * (16 + id % 200)) = @ROWS@ / 3
  THEN 'check ok' ELSE 'check FAILED update' END;

-- Per-user aggregates through the index, top spenders.
SELECT CASE WHEN (SELECT count(*) FROM (SELECT user_id, sum(amount) AS total FROM orders GROUP BY user_id
                                        ORDER BY total DESC LIMIT 100)) = 100
  THEN 'check ok' ELSE 'check FAILED top' END;
