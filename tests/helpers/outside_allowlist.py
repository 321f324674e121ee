"""Never listed in PIPELINE_MODEL_MODULES by the tests: importing it would record the import."""

IMPORTED = True


def fit_predict(train, test):
    return [0.0] * len(test)
