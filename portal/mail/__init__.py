"""Email notifications through an outbox: enqueued with their event, delivered by a separate sender.

* ``outbox`` - ``enqueue``: one row per email, in the event's own transaction.
* ``render`` - subject, plain text and HTML from the Jinja templates under ``templates/mail/``.
* ``message`` - the MIME message, built with the standard library's ``email`` package.
* ``transport`` - SMTP (``SMTP_URL``) or ``.eml`` files under ``$VAR_DIR/mail/``.
* ``sender`` - claims due rows, sends, marks them sent; retries with backoff; gives up after a bound.
"""
