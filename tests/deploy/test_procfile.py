import pytest

from dockyard.deploy.procfile import parse, processes
from dockyard.kernel.errors import InvalidInput
from dockyard.models.deployment_plan import Processes

PROCFILE = """# the shop
web: gunicorn shop.wsgi --bind 0.0.0.0:$PORT
worker:   python -m shop.worker

clock: python clock.py && echo done
release: python manage.py migrate
"""


def test_every_process_type_in_order() -> None:
    assert parse(PROCFILE) == {
        "web": "gunicorn shop.wsgi --bind 0.0.0.0:$PORT",
        "worker": "python -m shop.worker",
        "clock": "python clock.py && echo done",
        "release": "python manage.py migrate",
    }


def test_the_release_command_and_the_other_types_beside_web() -> None:
    assert processes(PROCFILE) == Processes(
        commands={"worker": ["sh", "-c", "exec python -m shop.worker"],
                  "clock": ["sh", "-c", "python clock.py && echo done"]},
        release=["sh", "-c", "exec python manage.py migrate"])
    assert processes(PROCFILE).types() == ["web", "clock", "worker"]


def test_no_procfile_means_web_alone() -> None:
    assert processes(None) == Processes()
    assert processes(None).types() == ["web"]


@pytest.mark.parametrize(("text", "says"), [
    ("web ./serve\n", "line 1 is not `type: command`"),
    ("web: ./serve\nworker:\n", "line 2 is not `type: command`"),
    ("Web: ./serve\n", "process type 'Web' must be lowercase"),
    ("web: a\nweb: b\n", "process type 'web' is defined twice"),
])
def test_a_bad_line_is_named(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse(text)
