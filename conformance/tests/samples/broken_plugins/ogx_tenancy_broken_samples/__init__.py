"""Deliberately broken plugins: each is the sample third-party plugin with one defect.

The conformance suite's own tests run ``ogx-tenancy-conformance plugin <name>`` on each and check
that it fails, naming the broken guarantee. Never install these outside a test environment.
"""
