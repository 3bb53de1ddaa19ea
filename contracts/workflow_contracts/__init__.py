"""Wire models shared by the services: asset definition, job manifest, token claims.

Depends on nothing but pydantic and PyYAML, and on no service.
"""
