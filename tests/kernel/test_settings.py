from pathlib import Path

from dockyard.kernel.settings import Settings


def test_prefix_and_conventional_names(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKYARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DOCKYARD_PORT", "9001")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/dockyard")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.port == 9001
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/dockyard"
    assert settings.redis_url == "redis://cache:6379/0"


def test_embedded_defaults_use_sqlite_in_the_data_dir(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(data_dir=Path("/srv/dy"))
    assert settings.sqlalchemy_url == "sqlite+dockyard:////srv/dy/dockyard.db"
    assert settings.key_file == Path("/srv/dy/secret.key")
    assert settings.api_url == "http://127.0.0.1:8420"


def test_settings_are_read_when_built_not_at_import(monkeypatch):
    monkeypatch.setenv("DOCKYARD_PORT", "9100")
    first = Settings()
    monkeypatch.setenv("DOCKYARD_PORT", "9200")
    assert (first.port, Settings().port) == (9100, 9200)
