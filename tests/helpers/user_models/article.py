"""The article's learn_predict, verbatim, and the one-line adapter that runs it through --model."""

import pandas as pd


def learn_predict(records):

    import pandas as pd
    from sklearn.ensemble import GradientBoostingRegressor

    target_attr = 'sales'
    learn_attrs = ['attr1', 'attr2', 'attr3']

    data = pd.DataFrame(records[1])
    data[learn_attrs] = data[learn_attrs].apply(pd.to_numeric)
    data = data.fillna(0.)

    if len(data["year"].unique()) < 3:
        return [] #Ne rien faire pour les combinaisons de moins de 3 ans

    year_max = data["year"].max()
    train = data[data["year"] <  year_max] #Il y a 2 ans pour apprendre
    test  = data[data["year"] == year_max] #L'année prochaine est consacrée à l'évaluation des prévisions

    model = GradientBoostingRegressor()
    model.fit(train[learn_attrs], train[target_attr])
    test.loc[:, "predict"] = model.predict(test[learn_attrs])

    return test[["shop_id","date","predict","sales"]].to_dict(orient='records')


def adapter(train, test):
    return learn_predict((None, pd.concat([train, test]).to_dict("records")))
