"""A function for the parity walk: what it answers depends on nothing but its event."""


def handler(event, context):
    return {"event": event, "function": context.function_name}
