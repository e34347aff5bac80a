"""Small step 1-3 outputs written by hand: three tables, their dictionaries, theme metadata and pairs."""

from __future__ import annotations

import json
from pathlib import Path

from steps.ddl_generation.manifest import Manifest, ManifestEntry
from steps.ddl_generation.model import Column, Table

DDL = {
    "film": """-- public.film: Films that can be rented
CREATE TABLE public.film (
    film_id integer NOT NULL, -- Film ID (primary key)
    title text NOT NULL, -- Film title
    rating text, -- MPAA rating of the film
    rental_rate numeric(4,2) NOT NULL, -- Price of one rental
    CONSTRAINT film_pkey PRIMARY KEY (film_id)
);
""",
    "actor": """-- public.actor: Actors who appear in films
CREATE TABLE public.actor (
    actor_id integer NOT NULL, -- Actor ID (primary key)
    first_name text NOT NULL, -- First name
    last_name text NOT NULL, -- Last name
    CONSTRAINT actor_pkey PRIMARY KEY (actor_id)
);
""",
    "film_actor": """-- public.film_actor: Which actor plays in which film
CREATE TABLE public.film_actor (
    actor_id integer NOT NULL, -- Actor ID (references actor)
    film_id integer NOT NULL, -- Film ID (references film)
    CONSTRAINT film_actor_pkey PRIMARY KEY (actor_id, film_id)
);
""",
}

DICTIONARY = {
    "film": "# public.film: Films that can be rented\n\n| Column | Type | Comment |\n|---|---|---|\n"
    "| film_id | integer | Film ID |\n| title | text | Film title |\n| rating | text | MPAA rating |\n"
    "| rental_rate | numeric(4,2) | Price of one rental |\n",
    "actor": "# public.actor: Actors who appear in films\n\n| Column | Type | Comment |\n|---|---|---|\n"
    "| actor_id | integer | Actor ID |\n| first_name | text | First name |\n| last_name | text | Last name |\n",
    "film_actor": "# public.film_actor: Which actor plays in which film\n\n| Column | Type | Comment |\n|---|---|---|\n"
    "| actor_id | integer | Actor ID |\n| film_id | integer | Film ID |\n",
}

METADATA = "# metadata (business themes)\n\n## Themes\n\n- Film catalogue: films, ratings and prices\n- Casting: actors and their films\n"

PAIRS = [
    {"question": "How many films are there for each rating?", "sql": "SELECT rating, count(*) FROM film GROUP BY rating", "theme": "catalogue"},
    {"question": "What is the average rental price of a film?", "sql": "SELECT avg(rental_rate) FROM public.film", "theme": "catalogue"},
    {"question": "Which actors appear in the most films?", "sql": "SELECT a.first_name, a.last_name, count(*) AS films FROM actor a JOIN film_actor fa ON fa.actor_id = a.actor_id GROUP BY a.actor_id, a.first_name, a.last_name ORDER BY films DESC LIMIT 10", "theme": "casting"},
    {"question": "List the titles of films that actor 1 plays in", "sql": "SELECT f.title FROM film f JOIN film_actor fa ON fa.film_id = f.film_id WHERE fa.actor_id = 1", "theme": "casting"},
    {"question": "找出租金最高的电影", "sql": "SELECT title FROM film ORDER BY rental_rate DESC LIMIT 1"},
]

PAIR_FILE = "qs_testdb_20260101_100000_pair.json"


def write_task_files(directory: Path, *, pairs: list | None = None, manifest: bool = True) -> Path:
    """Write the step 1-3 files of a small task into ``directory``; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in DDL:
        (directory / f"{name}.ddl").write_text(DDL[name], encoding="utf-8")
        (directory / f"{name}_detail.md").write_text(DICTIONARY[name], encoding="utf-8")
        entries.append(ManifestEntry(Table("public", name, columns=[Column("id", "integer")]), f"{name}.ddl", f"{name}_detail.md"))
    if manifest:
        Manifest(database="testdb", business_context="DVD rental", language="en", entries=entries).write(directory)
    (directory / "metadata_detail.md").write_text(METADATA, encoding="utf-8")
    write_pairs(directory, PAIRS if pairs is None else pairs)
    return directory


def write_pairs(directory: Path, pairs: list, name: str = PAIR_FILE) -> Path:
    path = Path(directory) / name
    path.write_text(json.dumps(pairs, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
