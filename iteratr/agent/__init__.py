"""Driving an ACP agent: the process, the protocol session, model discovery, the scripted agent."""
