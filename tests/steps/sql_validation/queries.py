"""Known-good, known-bad and hostile SQL over pagila, shared by the step-3 tests."""

GOOD = [
    "SELECT title, length FROM film WHERE length > 120 ORDER BY length DESC LIMIT 10",
    "SELECT c.first_name, c.last_name, a.phone FROM customer c JOIN address a ON a.address_id = c.address_id",
    "SELECT cat.name, count(*) AS films FROM category cat JOIN film_category fc ON fc.category_id = cat.category_id "
    "GROUP BY cat.name ORDER BY films DESC",
    "SELECT rating, avg(rental_rate) FROM film GROUP BY rating HAVING count(*) > 100",
    "WITH busy AS (SELECT customer_id, count(*) AS n FROM rental GROUP BY customer_id) "
    "SELECT c.email, b.n FROM busy b JOIN customer c USING (customer_id) WHERE b.n > 30",
    "SELECT customer_id, amount, rank() OVER (PARTITION BY customer_id ORDER BY amount DESC) FROM payment",
    "SELECT first_name FROM actor UNION SELECT first_name FROM customer",
    "SELECT title FROM film WHERE rating = 'PG-13'",
    "SELECT title FROM film WHERE rating IN ('G', 'NC-17') AND 'Trailers' = ANY (special_features)",
    "SELECT date_trunc('month', rental_date) AS month, count(*) FROM rental "
    "WHERE rental_date >= '2022-03-01' GROUP BY 1 ORDER BY 1",
    "SELECT s.store_id, sum(p.amount) FROM payment p JOIN staff s ON s.staff_id = p.staff_id GROUP BY s.store_id",
    "SELECT ci.city, co.country FROM city ci JOIN country co ON co.country_id = ci.country_id WHERE co.country = 'Japan'",
    "SELECT f.title FROM film f WHERE NOT EXISTS (SELECT 1 FROM inventory i WHERE i.film_id = f.film_id)",
    "SELECT a.first_name || ' ' || a.last_name AS actor, count(fa.film_id) FROM actor a "
    "LEFT JOIN film_actor fa ON fa.actor_id = a.actor_id GROUP BY a.actor_id ORDER BY 2 DESC LIMIT 5",
    "(SELECT title FROM film ORDER BY rental_rate DESC LIMIT 3) INTERSECT (SELECT title FROM film)",
    "SELECT l.name, count(f.film_id) FROM language l LEFT JOIN film f ON f.language_id = l.language_id GROUP BY l.name;",
    "-- how many films per rating\nSELECT rating, count(*) FROM film GROUP BY rating -- done\n",
]

# SQL PostgreSQL rejects, with the SQLSTATE it must give.
BAD = [
    ("SELECT * FROM films", "42P01"),  # unknown table
    ("SELECT title, rentl_rate FROM film", "42703"),  # unknown column
    ("SELECT title + 1 FROM film", "42883"),  # text + integer
    ("SELECT title, count(*) FROM film JOIN film_actor USING (film_id) GROUP BY actor_id", "42803"),  # broken GROUP BY
    ("SELECT title FROM film WHERE rating = 'X'", "22P02"),  # not a value of the mpaa_rating enum
    ("SELECT * FROM rental WHERE rental_date > '2005-13-45'", "22008"),  # no such date
    ("SELECT c.email FROM customer c JOIN rental r ON r.customer_id = c.id", "42703"),  # wrong join column
]

# Valid SQL whose filter matches nothing: a warning, not a failure.
EMPTY = "SELECT title FROM film WHERE length > 10000"

# Every way of writing that must be refused before it reaches the database.
WRITE_ATTEMPTS = [
    "INSERT INTO actor (first_name, last_name) VALUES ('A', 'B')",
    "UPDATE film SET rental_rate = 0",
    "DELETE FROM film_actor",
    "CREATE TABLE dp_evil (x int)",
    "DROP TABLE film_actor",
    "ALTER TABLE film ADD COLUMN evil int",
    "TRUNCATE film_actor",
    "WITH d AS (DELETE FROM film_actor RETURNING *) SELECT * FROM d",
    "SELECT * INTO dp_evil_copy FROM film",
    "SELECT * FROM film FOR UPDATE",
    "SELECT * FROM film WHERE film_id = 1 FOR SHARE",
    "SELECT 1; DELETE FROM film_actor",
    "SELECT 1 -- harmless\n; DELETE FROM film_actor",
    "SELECT nextval('film_film_id_seq')",
    "SELECT setval('film_film_id_seq', 1)",
    "SELECT pg_sleep(5)",
    "SELECT pg_catalog.pg_sleep(5)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "COPY film TO STDOUT",
    "COPY film_actor FROM STDIN",
    "CALL some_procedure()",
    "DO $$BEGIN DELETE FROM film_actor; END$$",
    "MERGE INTO actor a USING actor b ON a.actor_id = b.actor_id WHEN MATCHED THEN DELETE",
    "GRANT ALL ON film TO PUBLIC",
    "SET default_transaction_read_only = off",
    "LOCK TABLE film",
    "VACUUM film",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_advisory_lock(1)",
]
