"""Four Rooms (Sutton, Precup & Singh 1999) as used by Bacon, Harb & Precup (2017).

A 13x13 grid whose walls leave 104 open cells in four rooms joined by four doorways. The state
is the index of the agent's cell (0..103, open cells in row-major order); the actions are
up, down, left and right. An action moves the agent one cell in its direction with probability
2/3; with probability 1/3 the agent moves instead in one of the other three directions, each
with probability 1/9; a move into a wall leaves the agent where it is (the dynamics as the
option-critic paper and its code's docstring state them; the released script differs in a
detail: it slips to a random *open* neighbour, and only after a successful move). Episodes
start in a uniformly random cell other than the goal and end with reward 1 when the agent
enters the goal cell; every other step gives 0. The goal starts in the east doorway (cell 62,
as in Bacon's code) and, in the experiment, moves to a random cell of the lower-right room
after 1000 episodes.

:class:`FourRoomsEnv` is a ``gymnasium.Env`` (it passes ``gymnasium.utils.env_checker``);
:func:`slip` and :data:`NEXT_CELL` are the same dynamics in batched NumPy form, which the
experiment uses to run many independent runs at once.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LAYOUT = """\
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
w     w     w
ww wwww     w
w     www www
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww"""

WALLS = np.array([[c == "w" for c in row] for row in LAYOUT.splitlines()])
CELLS = np.argwhere(~WALLS)  # (104, 2): row, column of every open cell, row-major
N_STATES = len(CELLS)
N_ACTIONS = 4
DIRECTIONS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right
ACTION_NAMES = ("up", "down", "left", "right")
EAST_DOORWAY = 62  # Bacon et al.'s initial goal
SUCCESS_PROBABILITY = 2 / 3
MAX_EPISODE_STEPS = 1000  # Bacon et al.'s nsteps


def _cell_index() -> np.ndarray:
    index = np.full(WALLS.shape, -1)
    index[tuple(CELLS.T)] = np.arange(N_STATES)
    return index


CELL_INDEX = _cell_index()


def _next_cell() -> np.ndarray:
    """``NEXT_CELL[s, d]``: the cell reached from ``s`` by moving in direction ``d``
    (``s`` itself when a wall is in the way)."""
    table = np.zeros((N_STATES, N_ACTIONS), dtype=np.int64)
    for s, (r, c) in enumerate(CELLS):
        for d, (dr, dc) in enumerate(DIRECTIONS):
            target = CELL_INDEX[r + dr, c + dc]
            table[s, d] = s if target < 0 else target
    return table


NEXT_CELL = _next_cell()
# Where the goal moves after the switch: Bacon et al.'s list, the 20 cells of the south-east
# room and the doorway on its west side (cell 88).
NEXT_GOALS = np.array(
    [s for s, (r, c) in enumerate(CELLS) if (r >= 8 and c >= 7) or (r, c) == (10, 6)]
)


def slip(actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The direction actually taken: the chosen one with probability 2/3, otherwise one of
    the other three, uniformly."""
    actions = np.asarray(actions)
    slipped = rng.random(actions.shape) >= SUCCESS_PROBABILITY
    other = (actions + rng.integers(1, N_ACTIONS, size=actions.shape)) % N_ACTIONS
    return np.where(slipped, other, actions)


def step_cells(states: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Next cells of a batch of agents (one transition of the Four Rooms dynamics each)."""
    return NEXT_CELL[states, slip(actions, rng)]


class FourRoomsEnv(gym.Env):
    """Four Rooms as a Gymnasium environment (observation: cell index; 4 actions).

    ``reset(options={"goal": g, "start": s})`` moves the goal and/or fixes the start cell;
    episodes are truncated after ``max_episode_steps`` steps.

    >>> env = FourRoomsEnv()
    >>> obs, info = env.reset(seed=0)
    >>> int(env.observation_space.n), int(env.action_space.n), env.goal
    (104, 4, 62)
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        goal: int = EAST_DOORWAY,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_mode: str | None = None,
    ):
        self.observation_space = gym.spaces.Discrete(N_STATES)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.goal = int(goal)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.state = 0
        self.steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "goal" in options:
            self.goal = int(options["goal"])
        if "start" in options:
            self.state = int(options["start"])
        else:
            starts = np.delete(np.arange(N_STATES), self.goal)
            self.state = int(self.np_random.choice(starts))
        self.steps = 0
        return self.state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        self.state = int(step_cells(np.array(self.state), np.array(action), self.np_random))
        self.steps += 1
        terminated = self.state == self.goal
        truncated = not terminated and self.steps >= self.max_episode_steps
        return self.state, float(terminated), terminated, truncated, {}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        grid = np.where(WALLS, "w", " ").astype("<U1")
        grid[tuple(CELLS[self.goal])] = "G"
        grid[tuple(CELLS[self.state])] = "A"
        return "\n".join("".join(row) for row in grid)
