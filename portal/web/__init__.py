"""The pages: server-rendered Flask blueprints over the same ledger functions as the JSON API.

* ``pages`` - landing, template filters and the HTML error pages.
* ``auth`` - login and logout pages, and the login guard for every page.
* ``customer`` - dashboard, pay, credit requests, decisions and exports.
* ``manager`` - portfolio, decisions log and manager actions.
* ``shadow`` - the champion and the challenger on the same live requests.
* ``forms`` / ``chart`` / ``exports`` - FlaskForms, the SVG chart and CSV/PDF files.
"""
