"""Run the deployed topology on one machine: ``make cluster`` (deploy/cluster.py; the README's Cluster section)."""
