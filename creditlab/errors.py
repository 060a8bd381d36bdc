"""The two kinds of failure a user is shown as one line instead of a traceback."""


class UserError(Exception):
    """Bad input (unknown name, bad value, missing or corrupt data): one line, exit code 2."""

    exit_code = 2


class DivergedError(Exception):
    """A loss or metric became NaN or inf: the run stops, keeps its checkpoint, exit code 3."""

    exit_code = 3

    def __init__(self, step: int, metric: str, value: float):
        self.step, self.metric, self.value = step, metric, value
        super().__init__(f"{metric} became {value} at step {step}; the checkpoint is kept")
