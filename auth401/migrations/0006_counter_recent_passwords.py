from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("auth401", "0005_devices"),
    ]

    operations = [
        migrations.AddField(
            model_name="failurecounter",
            name="recent",
            field=models.CharField(blank=True, db_default="", default="", max_length=99),
        ),
    ]
