"""The Compose files say what the README says of them (no Docker engine is needed to read them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import setting_names
from tests.bot_process import PROJECT_ROOT


def compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / name).read_text())
    return loaded


def test_every_variable_the_compose_files_set_for_the_bot_is_a_setting() -> None:
    names = set(setting_names())
    for name in ("compose.yaml", "compose.postgres.yaml"):
        environment = compose(name)["services"]["bot"]["environment"]
        assert set(environment) <= names, name


def test_the_postgresql_variant_runs_two_replicas_on_the_postgres_service() -> None:
    services = compose("compose.postgres.yaml")["services"]
    postgres, bot = services["postgres"], services["bot"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert bot["deploy"]["replicas"] == 2
    assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"}}

    url = bot["environment"]["DATABASE_URL"]
    user, database = (
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_DB"],
    )
    assert re.fullmatch(
        rf"postgresql://{user}:\$\{{POSTGRES_PASSWORD[^}}]*\}}@postgres:5432/{database}", url
    )
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")

    # One host port per replica (as many as Slack opens connections for), loopback only.
    (ports,) = bot["ports"]
    host, container = ports.rsplit(":", 1)
    first, last = (int(port) for port in host.removeprefix("127.0.0.1:").split("-"))
    assert container == bot["environment"]["PORT"]
    assert last - first + 1 == 10
    # Every replica mounts the one spool volume.
    assert bot["environment"]["SPOOL_DIR"].startswith("/data/")
    assert any(volume.endswith(":/data") for volume in bot["volumes"])


def test_the_readme_shows_how_to_start_and_scale_the_postgresql_variant() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "docker compose -f compose.postgres.yaml up -d --build" in readme
    assert "--scale bot=" in readme
    assert Path(PROJECT_ROOT / "compose.postgres.yaml").is_file()
