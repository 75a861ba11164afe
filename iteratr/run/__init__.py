"""The build loop and what it runs each iteration: prompt, inbox, hooks, recording, the run lock."""
