"""A job that fails twice, then succeeds: what retries are for."""

from pinball_examples import run_dir


def fails_twice() -> None:
    """Raise on the first two attempts of this instance; return on the third.

    The attempts are counted in a file of the instance's folder, as a job
    talking to a service that is briefly down would see it.
    """
    counter = run_dir() / "attempts"
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    print(f"attempt {attempt}", flush=True)
    if attempt < 3:
        raise ConnectionError(f"the service is not up yet (attempt {attempt})")
    print("the service answered")
