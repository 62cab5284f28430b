"""Hello world as a Flask application, for gunicorn and cymongoose.wsgi:
    gunicorn --chdir bench/python hello_flask:app ..."""

from flask import Flask, Response

app = Flask(__name__)


@app.route("/")
def hello():
    return Response(b"hello", mimetype="text/plain")
