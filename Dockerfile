FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
RUN pip install --no-cache-dir .
ENV PORT=8000
EXPOSE 8000
CMD ["conveyor", "api", "--host", "0.0.0.0"]
