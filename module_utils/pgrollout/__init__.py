"""Shared logic behind pgrollout's Ansible modules (library/)."""
