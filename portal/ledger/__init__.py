"""The ledger: every rule about money lives in this package, once.

* ``allocation`` - the pure allocation rule (chosen month first, then forward).
* ``payments`` - pay (one payment, or many in one transaction: a group commit) and reverse, under the customers' locks.
* ``statements`` - summary, year data and payment history.
* ``credit`` - the percentage rule and recording credit decisions.
* ``portfolio`` - the manager's view over all customers.
* ``errors`` - the exceptions the API turns into 4xx answers.
"""
