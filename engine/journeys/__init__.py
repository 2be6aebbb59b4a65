"""Journeys as marketers work with them: campaigns (save, launch, pause, stop), customers
and their events, segments, schedules, imports, reports and simulation. Built on the core;
used by the web API, the CLI and the jobs."""
