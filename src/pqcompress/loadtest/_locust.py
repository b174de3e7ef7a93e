"""The Locust side of a load test, run in its own process (``python -m
pqcompress.loadtest._locust PLAN.json``): Locust patches the standard library for gevent when
imported, which must not happen inside the caller's process.

It reads the plan the parent wrote (:func:`pqcompress.loadtest.runner.run_loadtest`), runs
the profile through Locust's library API (an ``Environment``, a local runner and a
``LoadTestShape``) and writes one record per arrival: when it arrived, how long until the
whole answer came back, the HTTP status (0 when none came) and the client-side failure kind.
Users are open-model arrival streams (see profiles.py): each arrival is sent from its own
greenlet, so a user never waits for an answer before the next arrival. Every loop here is
bounded: the profile's duration, then at most ``timeout_s`` for the requests still in
flight; at most ``max_in_flight`` requests at once (arrivals beyond it are recorded as
``client_overload`` and not sent).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402
from gevent.pool import Group  # noqa: E402
from geventhttpclient.client import HTTPClientPool  # noqa: E402
from locust import LoadTestShape, task  # noqa: E402
from locust.contrib.fasthttp import FastHttpUser  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.user.wait_time import constant  # noqa: E402

from pqcompress.loadtest.profiles import profile_from_dict  # noqa: E402


class Arrivals:
    """Shared state of one run: the plan, the payloads, the records and the in-flight group."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.profile = profile_from_dict(plan["profile"])
        blob = Path(plan["payload_file"]).read_bytes()
        self.bodies = [
            (blob[off : off + size], ctype) for off, size, ctype in plan["payload_index"]
        ]
        self.path = plan["path"]
        self.max_in_flight = int(plan["max_in_flight"])
        self.rng = random.Random(int(plan["seed"]))
        self.group = Group()
        self.records: list[tuple[float, float, int, str]] = []
        self.users: list[tuple[float, int]] = []
        self.t0 = time.monotonic()
        self.next_body = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def arrive(self, client: Any) -> None:
        t = self.now()
        if len(self.group) >= self.max_in_flight:
            self.records.append((t, 0.0, 0, "client_overload"))
            return
        body, ctype = self.bodies[self.next_body % len(self.bodies)]
        self.next_body += 1
        self.group.spawn(self._send, client, t, body, ctype)

    def _send(self, client: Any, t: float, body: bytes, ctype: str) -> None:
        start = time.monotonic()
        kind = "client_timeout"  # stays so if the greenlet is killed at the end, unanswered
        status = 0
        try:
            response = client.request("POST", self.path, data=body, headers={"Content-Type": ctype})
            status = int(response.status_code or 0)
            kind = ""
            if status == 0:
                error = response.error
                text = f"{type(error).__name__} {error}".lower()
                timed_out = "timeout" in text or "timed out" in text
                kind = "client_timeout" if timed_out else "connection"
        except gevent.Timeout:
            kind = "client_timeout"
        except Exception:  # any transport failure: no answer came back
            kind = "connection"
        finally:
            self.records.append((t, (time.monotonic() - start) * 1000.0, status, kind))


STATE: Arrivals | None = None


class OpenUser(FastHttpUser):
    """One open-model arrival stream (Poisson arrivals at the profile's per-user rate)."""

    wait_time = constant(0)
    network_timeout = 10.0
    connection_timeout = 10.0
    # a keep-alive connection the server closed while idle is reopened once (the request had
    # not been read); a refused or reset fresh connection is still an error
    max_retries = 1

    @task
    def arrivals(self) -> None:
        assert STATE is not None
        rate = STATE.profile.per_user_rps
        # each user starts at a random phase so that a ramp step does not arrive as one burst
        gevent.sleep(STATE.rng.uniform(0, 1.0 / rate))
        while True:
            STATE.arrive(self.client)
            gevent.sleep(STATE.rng.expovariate(rate))


class PlanShape(LoadTestShape):
    """The profile as Locust's LoadTestShape: the users of each second; None at the end."""

    def tick(self) -> tuple[int, float] | None:
        assert STATE is not None
        t = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if t >= STATE.profile.duration_s:
            return None
        users = STATE.profile.users_at(t)
        return users, max(1.0, float(users) * 100.0)


def run(plan_path: str) -> int:
    global STATE
    plan = json.loads(Path(plan_path).read_text())
    STATE = state = Arrivals(plan)
    OpenUser.network_timeout = OpenUser.connection_timeout = float(plan["timeout_s"])
    # one connection pool for all users: connections stay busy (a per-user pool at a low
    # per-user rate would sit idle past the server's keep-alive timeout and race its close)
    OpenUser.client_pool = HTTPClientPool(concurrency=max(1, int(plan["max_in_flight"])))
    shape = PlanShape()  # type: ignore[no-untyped-call]
    env = Environment(user_classes=[OpenUser], shape_class=shape, host=plan["url"])
    runner = env.create_local_runner()
    duration = state.profile.duration_s
    progress_s = float(plan.get("progress_s", 5.0))

    def sample() -> None:
        last = 0.0
        while True:
            t = state.now()
            state.users.append((t, runner.user_count))
            if progress_s > 0 and t - last >= progress_s:
                last = t
                done = [r for r in state.records if r[1] > 0 and r[2] == 200 and r[0] > t - 5]
                lat = sorted(r[1] for r in done)
                p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
                print(
                    f"loadtest t={t:5.0f}s/{duration:.0f}s users={runner.user_count} "
                    f"in-flight={len(state.group)} p95(5s)={p95:.1f}ms sent={len(state.records)}",
                    file=sys.stderr,
                    flush=True,
                )
            gevent.sleep(1.0)

    sampler = gevent.spawn(sample)
    state.t0 = time.monotonic()
    runner.start_shape()
    deadline = time.monotonic() + duration + 30.0
    while runner.shape_greenlet is not None and time.monotonic() < deadline:
        gevent.sleep(0.2)
    runner.stop()
    state.group.join(timeout=float(plan["timeout_s"]) + 1.0)  # the last answers, bounded
    unfinished = len(state.group)
    state.group.kill(block=True, timeout=5)
    sampler.kill(block=False)
    runner.quit()
    out = {
        "records": state.records,
        "users": state.users,
        "unfinished": unfinished,
        "started_unix": time.time() - state.now(),
    }
    Path(plan["events_file"]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
