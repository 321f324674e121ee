"""The models: the registry of named estimators, user models (`module:callable`), and how any of them is fitted."""
