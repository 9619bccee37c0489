"""The webhook delivery engine: Standard Webhooks signing, retries, delivery logs, rate limits.

Every domain that sends webhooks (email ingress, scan events) goes through `webhooks.service`;
none of it opens an HTTP connection of its own. A domain keeps its own table for what is
specific to it (an email webhook's address, template and policy) and references an engine
endpoint by id, created and changed in the same transaction as its own row::

    from conduit.webhooks import service as webhooks

    endpoint, secret = await webhooks.create_endpoint(
        session, runtime, org_id=org.id, url=url, kind="email",
        secret=None,              # None: a new `whsec_` secret; given: checked, then used
        rate_limit=60,            # deliveries per minute, None: unlimited; excess waits, never dropped
        custom_headers={"Authorization": "Bearer ..."},   # sealed; Host, webhook-* ... are a 422
    )                             # `secret` is shown once; the URL is checked against SSRF (422)
    webhooks.update_endpoint(runtime, endpoint, url=..., rate_limit=..., custom_headers=...)
    new_secret = webhooks.rotate_secret(runtime.keyring, endpoint)   # the old one signs too, 24 h
    webhooks.disable_endpoint(endpoint, "reason") / webhooks.enable_endpoint(endpoint)
    await webhooks.get_endpoint(session, org_id, endpoint_id)        # 404 across tenants
    await webhooks.delete_endpoint(session, endpoint)                # and its deliveries and log

    delivery = webhooks.enqueue_delivery(
        session, endpoint, event_type="email.received", payload={...} or b"...",
        event_id=None,            # the `webhook-id` (receivers dedupe on it); default `msg_...`
        attributes={"sender": ..., "smtp_message_id": ...},   # the caller's fields, kept with it
    )                             # sent only once the caller's transaction commits
    delivery, attempt = await webhooks.deliver_now(session, runtime, endpoint, event_type=..., payload=...)
                                  # one awaited attempt, never retried ("simulate"); commit first on SQLite
    await webhooks.deliveries_page(session, org_id, status=None, endpoint_id=None, kind=None,
                                   page=1, page_size=50)            # newest first
    await webhooks.delivery(session, org_id, delivery_id)           # 404 across tenants
    await webhooks.attempts_of(session, delivery_id)                # its delivery log, oldest first
    await webhooks.attempts_page(session, endpoint_id, page=1, page_size=50)  # an endpoint's log
    await webhooks.redeliver(session, delivery)                     # 409 while pending or disabled

A delivery is `pending` until an attempt answers 2xx (`delivered`), 3xx or another 4xx, or its
target is refused (`failed`), 410 (`disabled`, and so is the endpoint, with the reason), or eight
attempts fail on network errors, timeouts, 408, 429 or 5xx (`dead`). Attempts come at once, then
after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (±20% jitter), or when `Retry-After` says
(at most 10 h). Each attempt is a `WebhookAttempt` row: status code, duration, error, the
first 4 KB of the response, timestamps. Over HTTP: `/api/v1/webhooks/deliveries` (`routes`);
on the command line: `conduit webhooks`.
"""
