// trackline web app: our own script, loaded from our origin only (the lead engineer fills this file).
