"""Email ingress: DNS and domain verification, mail authentication (SPF, DKIM, DMARC).

The SMTP server, domains, SMTP policies and email webhooks build on these parts.
"""
