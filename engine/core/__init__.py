"""The core: what runs journeys. The database and its models, the registry of node types,
campaign documents (graph, validation), the executor that moves batches of customers along
edges, wakeups, counters, and what nodes need while they run (rules, controls, templates,
send windows, waiting for events, calendars).

It imports nothing above it and names no node type: node types tell it what they are
through their declarations and hooks (engine.sdk).
"""
