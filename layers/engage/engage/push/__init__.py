"""Sending pushes through FCM (firebase-admin). Only the sending function imports this package."""
